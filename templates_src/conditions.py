"""Conditions shared by several stacks, and references between conditional resources.

LocalStack 4.13 cannot delete a stack in which one conditional resource refers to another unless
the reference itself is conditional (measured: DeleteStack fails with "Unresolved resource
dependencies"). ``only_if`` writes such a reference; cfn-lint (W1028) then rightly sees that its
AWS::NoValue branch is unreachable, so the resource carries ``UNREACHABLE_BRANCH_IS_DELIBERATE``.
"""

from __future__ import annotations

from troposphere import AWSHelperFn, Equals, If, Ref, Template

from templates_src.naming import flag_parameter

NAT_ENABLED = "NatEnabled"

UNREACHABLE_BRANCH_IS_DELIBERATE = {
    "cfn-lint": {"config": {"ignore_checks": ["W1028"]}},
    "LintSuppressionReasons": {"W1028": "Conditional reference kept for LocalStack 4.13 stack deletion."},
}


def add_nat_condition(template: Template, description: str) -> None:
    """The ``EnableNat`` toggle the root passes to every stack that changes with NAT, as ``NatEnabled``."""
    template.add_parameter(flag_parameter("EnableNat", description))
    template.add_condition(NAT_ENABLED, Equals(Ref("EnableNat"), "true"))


def only_if(condition: str, value: object) -> AWSHelperFn:
    """``value`` under ``condition``, else no value: a reference from one conditional resource to another."""
    return If(condition, value, Ref("AWS::NoValue"))
