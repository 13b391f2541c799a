"""Network child stack: a VPC with two public subnets in two AZs, an internet gateway and routes.

NAT is optional and off by default (the seed's forced NAT gateways were cost without purpose for
a pipeline whose builds can run outside the VPC). With ``EnableNat=true`` the stack adds an EIP, a
NAT gateway and a default route from the two private subnets through it; CodeBuild then runs there.
"""

from __future__ import annotations

from troposphere import GetAZs, Join, Output, Ref, Select, Template, ec2

from templates_src.conditions import NAT_ENABLED, UNREACHABLE_BRANCH_IS_DELIBERATE, add_nat_condition, only_if
from templates_src.naming import add_identity_parameters, named, tags
from templates_src.settings import Settings

def template(settings: Settings) -> Template:
    net = settings.network
    t = Template(Description=f"{settings.project} network ({settings.environment}): VPC, public subnets, "
                             "internet gateway, optional NAT")
    add_identity_parameters(t, settings)
    add_nat_condition(t, "Create a NAT gateway and private subnets.")

    vpc = t.add_resource(ec2.VPC(
        "Vpc", CidrBlock=net.vpc_cidr, EnableDnsSupport=True, EnableDnsHostnames=True,
        Tags=tags(("Name", named("vpc"))),
    ))
    gateway = t.add_resource(ec2.InternetGateway("InternetGateway", Tags=tags(("Name", named("igw")))))
    attachment = t.add_resource(ec2.VPCGatewayAttachment(
        "InternetGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway),
    ))
    public_routes = t.add_resource(ec2.RouteTable(
        "PublicRouteTable", VpcId=Ref(vpc), Tags=tags(("Name", named("public"))),
    ))
    t.add_resource(ec2.Route(
        "PublicDefaultRoute", RouteTableId=Ref(public_routes), DestinationCidrBlock="0.0.0.0/0",
        GatewayId=Ref(gateway), DependsOn=attachment.title,
    ))

    public_subnets = []
    for letter, cidr, az_index in zip("AB", net.public_subnet_cidrs, net.availability_zone_indexes, strict=True):
        subnet = t.add_resource(ec2.Subnet(
            f"PublicSubnet{letter}", VpcId=Ref(vpc), CidrBlock=cidr,
            AvailabilityZone=Select(az_index, GetAZs("")), MapPublicIpOnLaunch=True,
            Tags=tags(("Name", named(f"public-{letter.lower()}"))),
        ))
        t.add_resource(ec2.SubnetRouteTableAssociation(
            f"PublicSubnet{letter}RouteTableAssociation", SubnetId=Ref(subnet), RouteTableId=Ref(public_routes),
        ))
        public_subnets.append(subnet)

    # Private subnets and their route table cost nothing, so they always exist (isolated without
    # NAT); only what costs money, or needs it, depends on the toggle.
    private_routes = t.add_resource(ec2.RouteTable(
        "PrivateRouteTable", VpcId=Ref(vpc), Tags=tags(("Name", named("private"))),
    ))
    private_subnets = []
    for letter, cidr, az_index in zip("AB", net.private_subnet_cidrs, net.availability_zone_indexes, strict=True):
        subnet = t.add_resource(ec2.Subnet(
            f"PrivateSubnet{letter}", VpcId=Ref(vpc), CidrBlock=cidr,
            AvailabilityZone=Select(az_index, GetAZs("")),
            Tags=tags(("Name", named(f"private-{letter.lower()}"))),
        ))
        t.add_resource(ec2.SubnetRouteTableAssociation(
            f"PrivateSubnet{letter}RouteTableAssociation", SubnetId=Ref(subnet), RouteTableId=Ref(private_routes),
        ))
        private_subnets.append(subnet)

    eip = t.add_resource(ec2.EIP(
        "NatEip", Condition=NAT_ENABLED, Domain="vpc", DependsOn=attachment.title,
        Tags=tags(("Name", named("nat"))),
    ))
    nat = t.add_resource(ec2.NatGateway(
        "NatGateway", Condition=NAT_ENABLED, Metadata=UNREACHABLE_BRANCH_IS_DELIBERATE,
        AllocationId=only_if(NAT_ENABLED, eip.get_att("AllocationId")), SubnetId=Ref(public_subnets[0]),
        Tags=tags(("Name", named("nat"))),
    ))
    t.add_resource(ec2.Route(
        "PrivateDefaultRoute", Condition=NAT_ENABLED, Metadata=UNREACHABLE_BRANCH_IS_DELIBERATE,
        RouteTableId=Ref(private_routes), DestinationCidrBlock="0.0.0.0/0", NatGatewayId=only_if(NAT_ENABLED, Ref(nat)),
    ))

    t.add_output(Output("VpcId", Description="The VPC.", Value=Ref(vpc)))
    for subnet, which in zip(public_subnets, ("first", "second"), strict=True):
        t.add_output(Output(f"{subnet.title}Id", Description=f"The public subnet in the {which} AZ.",
                            Value=Ref(subnet)))
    t.add_output(Output("PublicSubnetIds", Description="Both public subnets, comma-separated.",
                        Value=Join(",", [Ref(subnet) for subnet in public_subnets])))
    t.add_output(Output("PrivateSubnetIds", Description="Both private subnets, comma-separated.",
                        Value=Join(",", [Ref(subnet) for subnet in private_subnets])))
    return t
