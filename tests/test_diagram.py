"""The architecture diagram: drawn from the built JSON, complete, wired, marked, deterministic."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from templates_src import diagram
from templates_src.__main__ import main
from templates_src.render import BUILD_DIR
from templates_src.settings import available_environments

ENVIRONMENTS = available_environments()
NODE = re.compile(r'^\s+(\w+)\["(.*)"\]$')
SUBGRAPH = re.compile(r'^\s+subgraph (\w+)\["(.*)"\]$')
EDGE = re.compile(r'^\s+(\w+) (-->|==>|-\.->)(?:\|"(.*)"\|)? (\w+)$')


def parse(text: str) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str, str, str]], list[str]]:
    """(nodes id → label, subgraphs id → title, edges (from, arrow, label, to), conditional ids)."""
    nodes, subgraphs, edges, conditional = {}, {}, [], []
    for line in text.splitlines():
        if match := SUBGRAPH.match(line):
            subgraphs[match[1]] = match[2]
        elif match := NODE.match(line):
            nodes[match[1]] = match[2]
        elif match := EDGE.match(line):
            edges.append((match[1], match[2], match[3] or "", match[4]))
        elif line.strip().startswith("class "):
            conditional = line.split()[1].split(",")
    return nodes, subgraphs, edges, conditional


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def built(request) -> tuple[str, dict, str]:
    folder = BUILD_DIR / request.param
    documents = diagram.load(folder)
    return request.param, documents, diagram.mermaid(documents)


def test_every_resource_of_every_template_is_a_node(built):
    environment, documents, text = built
    nodes, subgraphs, _, _ = parse(text)
    root = documents["root.json"]
    expected = set()
    for stack, resource in root["Resources"].items():
        assert resource["Type"] == diagram.STACK_TYPE
        assert stack in subgraphs, f"{environment}: no subgraph for {stack}"
        child = documents[resource["Properties"]["TemplateURL"]]
        for logical_id, child_resource in child["Resources"].items():
            identifier = diagram.node_id(stack, logical_id)
            expected.add(identifier)
            assert identifier in nodes, f"{environment}: {stack}/{logical_id} is missing from the diagram"
            label = nodes[identifier].split("<br/>")
            assert label[:2] == [logical_id, diagram.short_type(child_resource["Type"])]
    assert set(nodes) == expected, "the diagram draws nodes that are not resources"


def test_every_template_file_is_drawn(built):
    environment, documents, _ = built
    drawn = {"root.json"} | {resource["Properties"]["TemplateURL"]
                             for resource in documents["root.json"]["Resources"].values()}
    assert drawn == set(documents), f"{environment}: templates not in the diagram: {set(documents) - drawn}"


def test_ids_are_safe_for_mermaid(built):
    _, _, text = built
    nodes, subgraphs, edges, conditional = parse(text)
    ids = {*nodes, *subgraphs, *conditional, *(edge[0] for edge in edges), *(edge[3] for edge in edges)}
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", identifier) for identifier in ids)
    assert {edge[0] for edge in edges} | {edge[3] for edge in edges} <= set(nodes), "edge to an undeclared node"
    assert set(conditional) <= set(nodes) | set(subgraphs)


def test_references_inside_a_stack_are_edges(built):
    _, _, text = built
    _, _, edges, _ = parse(text)
    pairs = {(source, target) for source, _, _, target in edges}
    assert ("NetworkStack_Vpc", "NetworkStack_PublicSubnetA") in pairs  # Ref
    assert ("BuildStack_BuildLogGroup", "BuildStack_BuildProject") in pairs  # Ref inside LogsConfig
    assert ("StorageStack_ArtifactBucket", "StorageStack_ArtifactBucketPolicy") in pairs  # Ref and GetAtt
    assert ("IamStack_CodeBuildServiceRole", "IamStack_CodeBuildVpcAccessPolicy") in pairs


def test_root_wiring_links_producer_to_consumer_across_stacks(built):
    _, _, text = built
    _, _, edges, _ = parse(text)
    labelled = {(source, label.split(" [")[0], target) for source, _, label, target in edges}
    # StorageStack outputs ArtifactBucketArn = GetAtt ArtifactBucket.Arn; the root passes it to
    # IamStack's ArtifactBucketArn parameter, which both roles' policies use.
    assert ("StorageStack_ArtifactBucket", "ArtifactBucketArn", "IamStack_CodeBuildServiceRole") in labelled
    assert ("StorageStack_ArtifactBucket", "ArtifactBucketArn", "IamStack_PipelineServiceRole") in labelled
    assert ("StorageStack_ArtifactBucket", "ArtifactBucketName", "PipelineStack_Pipeline") in labelled
    assert ("IamStack_CodeBuildServiceRole", "CodeBuildRoleArn", "BuildStack_BuildProject") in labelled
    assert ("BuildStack_BuildProject", "CodeBuildProjectName", "PipelineStack_Pipeline") in labelled
    # An output joining two subnets links both.
    assert ("NetworkStack_PrivateSubnetA", "PrivateSubnetIds", "BuildStack_BuildProject") in labelled
    assert ("NetworkStack_PrivateSubnetB", "PrivateSubnetIds", "BuildStack_BuildProject") in labelled
    # The unconditional wiring between unconditional stacks is drawn thick.
    assert ("StorageStack_ArtifactBucket", "==>", "ArtifactBucketArn", "IamStack_CodeBuildServiceRole") in edges


def test_conditional_parts_are_marked_with_their_condition(built):
    _, _, text = built
    nodes, subgraphs, edges, conditional = parse(text)
    for stack in ("BuildStack", "PipelineStack"):
        assert subgraphs[stack].endswith("[if CodeBuildEnabled]")
        assert stack in conditional
    for resource in ("NetworkStack_NatGateway", "NetworkStack_NatEip", "NetworkStack_PrivateDefaultRoute",
                     "BuildStack_BuildSecurityGroup", "IamStack_CodeBuildVpcAccessPolicy"):
        assert nodes[resource].endswith("[if NatEnabled]")
        assert resource in conditional
    assert "[if" not in nodes["NetworkStack_Vpc"] and "NetworkStack_Vpc" not in conditional
    by_pair = {(source, target): (arrow, label) for source, arrow, label, target in edges}
    # A reference made inside Fn::If says so, and is dashed.
    assert by_pair[("NetworkStack_NatEip", "NetworkStack_NatGateway")] == ("-.->", "[if NatEnabled]")
    assert by_pair[("NetworkStack_Vpc", "BuildStack_BuildProject")] == ("-.->", "VpcId [if NatEnabled]")
    # Anything reaching into a conditional stack is dashed.
    assert by_pair[("IamStack_CodeBuildServiceRole", "BuildStack_BuildProject")][0] == "-.->"


def test_output_is_deterministic_whatever_the_key_order(built):
    _, documents, text = built

    def reversed_keys(node):
        if isinstance(node, dict):
            return {key: reversed_keys(node[key]) for key in reversed(list(node))}
        if isinstance(node, list):
            return [reversed_keys(item) for item in node]
        return node

    shuffled = {name: reversed_keys(documents[name]) for name in reversed(list(documents))}
    assert diagram.mermaid(shuffled) == text
    assert diagram.mermaid(json.loads(json.dumps(documents))) == text


def test_committed_architecture_md_is_current(built):
    environment, documents, _ = built
    path = BUILD_DIR / environment / diagram.ARCHITECTURE
    assert path.read_text(encoding="utf-8") == diagram.markdown(documents, environment), (
        f"{path} is stale: run `make build`")


def test_markdown_is_a_heading_and_one_mermaid_fence(built):
    environment, documents, text = built
    markdown = diagram.markdown(documents, environment)
    assert markdown.startswith(f"# Architecture: {environment}\n")
    assert markdown.count("```mermaid\n") == 1
    assert f"```mermaid\n{text}```\n" in markdown


# Small hand-made templates: one behaviour each.

def _documents(child: dict, parameters: dict | None = None, condition: str | None = None) -> dict:
    stack = {"Type": diagram.STACK_TYPE, "Properties": {"TemplateURL": "child.json", "Parameters": parameters or {}}}
    if condition:
        stack["Condition"] = condition
    return {"root.json": {"Resources": {"Child": stack}}, "child.json": child}


def test_sub_variables_are_references_but_escaped_and_local_ones_are_not():
    child = {"Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Other": {"Type": "AWS::S3::Bucket"},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {
            "TopicName": {"Fn::Sub": "${Bucket.Arn}-${!Other}-${AWS::Region}"},
            "DisplayName": {"Fn::Sub": ["${Other}", {"Other": "literal"}]},
        }},
    }}
    _, _, edges, _ = parse(diagram.mermaid(_documents(child)))
    assert [(source, target) for source, _, _, target in edges] == [("Child_Bucket", "Child_Topic")]


def test_wiring_through_an_output_that_joins_several_resources():
    producer = {"Resources": {"A": {"Type": "AWS::EC2::Subnet"}, "B": {"Type": "AWS::EC2::Subnet"}},
                "Outputs": {"Ids": {"Value": {"Fn::Join": [",", [{"Ref": "A"}, {"Ref": "B"}]]}}}}
    consumer = {"Parameters": {"SubnetIds": {"Type": "String"}},
                "Resources": {"Db": {"Type": "AWS::RDS::DBSubnetGroup",
                                     "Properties": {"SubnetIds": {"Fn::Split": [",", {"Ref": "SubnetIds"}]}}}}}
    documents = {
        "root.json": {"Resources": {
            "Net": {"Type": diagram.STACK_TYPE, "Properties": {"TemplateURL": "net.json"}},
            "Data": {"Type": diagram.STACK_TYPE, "Properties": {
                "TemplateURL": "data.json", "Parameters": {"SubnetIds": {"Fn::GetAtt": "Net.Outputs.Ids"}}}},
        }},
        "net.json": producer,
        "data.json": consumer,
    }
    _, _, edges, _ = parse(diagram.mermaid(documents))
    assert edges == [("Net_A", "==>", "SubnetIds", "Data_Db"), ("Net_B", "==>", "SubnetIds", "Data_Db")]


def test_unless_branch_is_marked():
    child = {"Resources": {
        "Key": {"Type": "AWS::KMS::Key"},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {
            "Name": {"Fn::If": ["UseDefault", "x", {"Ref": "Key"}]}}},
    }}
    _, _, edges, _ = parse(diagram.mermaid(_documents(child)))
    assert edges == [("Child_Key", "-.->", "[unless UseDefault]", "Child_Bucket")]


def test_a_missing_child_file_is_a_readable_error():
    documents = _documents({"Resources": {}})
    del documents["child.json"]
    with pytest.raises(diagram.DiagramError, match=r"Child's TemplateURL 'child.json' is not a template"):
        diagram.mermaid(documents)


def test_load_without_a_root_says_to_build(tmp_path):
    with pytest.raises(diagram.DiagramError, match="make build"):
        diagram.load(tmp_path)


def test_build_writes_and_lists_architecture_md_and_rewrites_keep_it(tmp_path, capsys):
    assert main(["--env", "local", "--out", str(tmp_path)]) == 0
    path = tmp_path / "local" / diagram.ARCHITECTURE
    assert path.read_text(encoding="utf-8") == (BUILD_DIR / "local" / diagram.ARCHITECTURE).read_text(encoding="utf-8")
    assert re.search(r"^\s+architecture\.md\s*$", capsys.readouterr().out, re.MULTILINE)
    # render.write removes stale *.json only; a rebuild leaves the diagram in place and current.
    (tmp_path / "local" / "stale.json").write_text("{}", encoding="utf-8")
    assert main(["--env", "local", "--out", str(tmp_path), "--quiet"]) == 0
    assert not (tmp_path / "local" / "stale.json").exists()
    assert path.exists()


def test_diagram_is_drawn_from_the_files_not_the_generator(tmp_path):
    folder = tmp_path / "local"
    shutil.copytree(BUILD_DIR / "local", folder)
    storage = json.loads((folder / "storage.json").read_text(encoding="utf-8"))
    storage["Resources"]["ExtraTopic"] = {"Type": "AWS::SNS::Topic"}
    (folder / "storage.json").write_text(json.dumps(storage), encoding="utf-8")
    text = diagram.write(folder).read_text(encoding="utf-8")
    assert 'StorageStack_ExtraTopic["ExtraTopic<br/>SNS::Topic"]' in text



def test_the_readme_shows_the_current_dev_diagram():
    built = (BUILD_DIR / "dev" / "architecture.md").read_text(encoding="utf-8")
    block = built[built.index("```mermaid"):built.rindex("```") + 3]
    assert block in (BUILD_DIR.parent / "README.md").read_text(encoding="utf-8"), (
        "README's architecture diagram is stale: paste build/dev/architecture.md's mermaid block")
