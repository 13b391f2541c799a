#!/usr/bin/env python3
"""Deploy the built nested stacks with boto3: ``python deploy.py deploy|plan|outputs|destroy --env ENV``.

Reads ``build/ENV/`` (written by ``python -m templates_src``), uploads the child templates,
deploys the root stack with a change set and streams the events of every nested stack.
It does not import troposphere. ``--help`` lists the options and exit codes.
"""

import sys

from deployer.cli import main

if __name__ == "__main__":
    sys.exit(main())
