"""templates_src/stacks/network.py: VPC, two public subnets, internet gateway and routes; NAT only under NatEnabled.

Also the rule that keeps LocalStack able to delete our stacks, checked generically over every template
of every shipped environment: a conditional resource refers to another conditional resource only inside
``Fn::If [Condition, ..., AWS::NoValue]``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from templates_src import settings
from templates_src.render import render
from templates_src.stacks import network

ENVIRONMENTS = ("local", "dev", "prod")
NO_VALUE = {"Ref": "AWS::NoValue"}
NAT_RESOURCES = {"NatEip", "NatGateway", "PrivateDefaultRoute"}
ALWAYS_RESOURCES = {
    "Vpc", "InternetGateway", "InternetGatewayAttachment", "PublicRouteTable", "PublicDefaultRoute",
    "PublicSubnetA", "PublicSubnetB", "PublicSubnetARouteTableAssociation", "PublicSubnetBRouteTableAssociation",
    "PrivateRouteTable", "PrivateSubnetA", "PrivateSubnetB",
    "PrivateSubnetARouteTableAssociation", "PrivateSubnetBRouteTableAssociation",
}


def with_network(loaded: settings.Settings, **changes: Any) -> settings.Settings:
    return dataclasses.replace(loaded, network=dataclasses.replace(loaded.network, **changes))


def rendered(env: str = "dev", **network_changes: Any) -> dict:
    loaded = settings.load(env)
    if network_changes:
        loaded = with_network(loaded, **network_changes)
    return network.template(loaded).to_dict()


def test_logical_ids_are_stable():
    resources = rendered()["Resources"]

    assert set(resources) == ALWAYS_RESOURCES | NAT_RESOURCES


def test_vpc_uses_the_configured_cidr_with_dns():
    vpc = rendered()["Resources"]["Vpc"]

    assert vpc["Type"] == "AWS::EC2::VPC"
    assert vpc["Properties"]["CidrBlock"] == "10.30.0.0/16"
    assert vpc["Properties"]["EnableDnsSupport"] is True
    assert vpc["Properties"]["EnableDnsHostnames"] is True


@pytest.mark.parametrize(("env", "cidrs"), [
    ("local", ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24", "10.20.3.0/24"]),
    ("dev", ["10.30.0.0/24", "10.30.1.0/24", "10.30.2.0/24", "10.30.3.0/24"]),
    ("prod", ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24", "10.40.3.0/24"]),
])
def test_subnet_cidrs_are_computed_in_python(env, cidrs):
    resources = rendered(env)["Resources"]

    assert [resources[name]["Properties"]["CidrBlock"]
            for name in ("PublicSubnetA", "PublicSubnetB", "PrivateSubnetA", "PrivateSubnetB")] == cidrs


def test_public_subnets_sit_in_the_configured_azs_and_map_public_ips():
    resources = rendered(availability_zone_indexes=(2, 0))["Resources"]

    for name, index in (("PublicSubnetA", 2), ("PublicSubnetB", 0), ("PrivateSubnetA", 2), ("PrivateSubnetB", 0)):
        properties = resources[name]["Properties"]
        assert resources[name]["Type"] == "AWS::EC2::Subnet"
        assert properties["VpcId"] == {"Ref": "Vpc"}
        assert properties["AvailabilityZone"] == {"Fn::Select": [index, {"Fn::GetAZs": ""}]}
    assert resources["PublicSubnetA"]["Properties"]["MapPublicIpOnLaunch"] is True
    assert resources["PublicSubnetB"]["Properties"]["MapPublicIpOnLaunch"] is True
    assert "MapPublicIpOnLaunch" not in resources["PrivateSubnetA"]["Properties"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("enable_nat", [False, True])
def test_no_template_uses_fn_cidr(env, enable_nat):
    """LocalStack does not implement Fn::Cidr: subnets are computed by settings.py instead."""
    loaded = with_network(settings.load(env), enable_nat=enable_nat)

    for name, document in render(loaded).items():
        assert "Fn::Cidr" not in json.dumps(document), name


def test_internet_gateway_attachment_and_public_default_route():
    resources = rendered()["Resources"]

    assert resources["InternetGateway"]["Type"] == "AWS::EC2::InternetGateway"
    assert resources["InternetGatewayAttachment"] == {
        "Type": "AWS::EC2::VPCGatewayAttachment",
        "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "InternetGateway"}},
    }
    assert resources["PublicRouteTable"]["Properties"]["VpcId"] == {"Ref": "Vpc"}
    assert resources["PublicDefaultRoute"] == {
        "Type": "AWS::EC2::Route",
        # A route to the gateway fails until the gateway is attached.
        "DependsOn": "InternetGatewayAttachment",
        "Properties": {
            "RouteTableId": {"Ref": "PublicRouteTable"},
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": {"Ref": "InternetGateway"},
        },
    }


@pytest.mark.parametrize(("subnet", "table"), [
    ("PublicSubnetA", "PublicRouteTable"), ("PublicSubnetB", "PublicRouteTable"),
    ("PrivateSubnetA", "PrivateRouteTable"), ("PrivateSubnetB", "PrivateRouteTable"),
])
def test_every_subnet_is_associated_with_its_route_table(subnet, table):
    association = rendered()["Resources"][f"{subnet}RouteTableAssociation"]

    assert association == {
        "Type": "AWS::EC2::SubnetRouteTableAssociation",
        "Properties": {"SubnetId": {"Ref": subnet}, "RouteTableId": {"Ref": table}},
    }


def test_nat_resources_exist_only_under_nat_enabled():
    template = rendered()
    resources = template["Resources"]

    assert template["Conditions"] == {"NatEnabled": {"Fn::Equals": [{"Ref": "EnableNat"}, "true"]}}
    assert {name for name, resource in resources.items() if "Condition" in resource} == NAT_RESOURCES
    assert {resources[name]["Condition"] for name in NAT_RESOURCES} == {"NatEnabled"}


def test_nat_gateway_sits_in_a_public_subnet_and_private_traffic_goes_through_it():
    resources = rendered()["Resources"]

    assert resources["NatEip"]["Properties"]["Domain"] == "vpc"
    assert resources["NatEip"]["DependsOn"] == "InternetGatewayAttachment"
    assert resources["NatGateway"]["Properties"]["SubnetId"] == {"Ref": "PublicSubnetA"}
    assert resources["NatGateway"]["Properties"]["AllocationId"] == {
        "Fn::If": ["NatEnabled", {"Fn::GetAtt": ["NatEip", "AllocationId"]}, NO_VALUE]}
    route = resources["PrivateDefaultRoute"]["Properties"]
    assert route["RouteTableId"] == {"Ref": "PrivateRouteTable"}
    assert route["DestinationCidrBlock"] == "0.0.0.0/0"
    assert route["NatGatewayId"] == {"Fn::If": ["NatEnabled", {"Ref": "NatGateway"}, NO_VALUE]}


def test_nat_toggle_is_a_parameter_without_default():
    parameters = rendered()["Parameters"]

    assert parameters["EnableNat"]["AllowedValues"] == ["true", "false"]
    assert "Default" not in parameters["EnableNat"]  # the root always passes it
    assert set(parameters) == {"ProjectName", "Environment", "EnableNat"}


def test_template_is_the_same_whichever_way_nat_is_set():
    """The toggle is decided at deploy time by the EnableNat parameter (its default lives in root)."""
    assert rendered(enable_nat=True) == rendered(enable_nat=False)


def test_outputs_are_vpc_and_subnet_ids():
    outputs = rendered()["Outputs"]

    assert {name: output["Value"] for name, output in outputs.items()} == {
        "VpcId": {"Ref": "Vpc"},
        "PublicSubnetAId": {"Ref": "PublicSubnetA"},
        "PublicSubnetBId": {"Ref": "PublicSubnetB"},
        "PublicSubnetIds": {"Fn::Join": [",", [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}]]},
        "PrivateSubnetIds": {"Fn::Join": [",", [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]]},
    }


def test_resources_are_named_and_tagged_per_project_and_environment():
    resources = rendered()["Resources"]

    assert resources["Vpc"]["Properties"]["Tags"] == [
        {"Key": "Environment", "Value": {"Ref": "Environment"}},
        {"Key": "Name", "Value": {"Fn::Sub": "${ProjectName}-${Environment}-vpc"}},
        {"Key": "Project", "Value": {"Ref": "ProjectName"}},
    ]


# --- conditional references, over every template ----------------------------------------------------------

SUB_VARIABLE = re.compile(r"\$\{(?!!)([^}]+)\}")


def references(node: Any, enclosing: tuple = ()) -> Iterator[tuple[str, tuple]]:
    """(referenced logical id, enclosing Fn::If branches) for each Ref, GetAtt and Sub ${X} under ``node``.

    Each enclosing branch is (condition, taken, other branch's value).
    """
    if isinstance(node, list):
        for item in node:
            yield from references(item, enclosing)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        (key, value), = node.items()
        if key == "Ref" and isinstance(value, str):
            yield value, enclosing
            return
        if key == "Fn::GetAtt":
            yield (value[0] if isinstance(value, list) else value.split(".")[0]), enclosing
            return
        if key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else value
            for name in SUB_VARIABLE.findall(text):
                if name not in variables:
                    yield name.split(".")[0], enclosing
            yield from references(variables, enclosing)
            return
        if key == "Fn::If":
            condition, when_true, when_false = value
            yield from references(when_true, (*enclosing, (condition, True, when_false)))
            yield from references(when_false, (*enclosing, (condition, False, when_true)))
            return
    for value in node.values():
        yield from references(value, enclosing)


def unwrapped_conditional_references(template: dict) -> list[str]:
    resources = template.get("Resources", {})
    conditions = {name: resource["Condition"] for name, resource in resources.items() if "Condition" in resource}
    problems = []
    for name, condition in conditions.items():
        for target, enclosing in references(resources[name].get("Properties", {})):
            if target not in conditions or target == name:
                continue
            wrapped = any(cond == conditions[target] and taken and other == NO_VALUE
                          for cond, taken, other in enclosing)
            if not wrapped:
                problems.append(f"{name} [{condition}] -> {target} [{conditions[target]}]")
    return problems


def all_templates() -> Iterator[Any]:
    for env in ENVIRONMENTS:
        for enable_nat in (False, True):
            loaded = with_network(settings.load(env), enable_nat=enable_nat)
            for name, document in render(loaded).items():
                if "Resources" in document:
                    yield pytest.param(document, id=f"{env}-nat{str(enable_nat).lower()}-{name}")


@pytest.mark.parametrize("template", list(all_templates()))
def test_conditional_resources_refer_to_each_other_only_through_fn_if(template):
    assert unwrapped_conditional_references(template) == []


def test_the_conditional_reference_check_catches_a_bare_reference():
    template = rendered()
    template["Resources"]["PrivateDefaultRoute"]["Properties"]["NatGatewayId"] = {"Ref": "NatGateway"}
    template["Resources"]["NatGateway"]["Properties"]["AllocationId"] = {
        "Fn::If": ["NatEnabled", {"Ref": "AWS::NoValue"}, {"Fn::GetAtt": ["NatEip", "AllocationId"]}]}

    assert unwrapped_conditional_references(template) == [
        "NatGateway [NatEnabled] -> NatEip [NatEnabled]",
        "PrivateDefaultRoute [NatEnabled] -> NatGateway [NatEnabled]",
    ]
