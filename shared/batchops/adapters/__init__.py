"""Adapters: the stores and AWS services the service layer reaches through its ports (the only code, with the
entry points, the rollout and the local emulator, that imports boto3)."""
