"""The deployer behind ``deploy.py``: reads ``build/ENV/``, talks to CloudFormation through boto3.

It never imports troposphere: the flow is one way, settings → templates → build/ → here → AWS.
"""
