"""Troposphere modules that generate the nested CloudFormation templates of the CI/CD platform.

Importing this package builds nothing: each child stack is a pure function from validated
settings to a ``troposphere.Template`` (see ``stacks/``), and ``__main__`` writes them to ``build/``.
"""
