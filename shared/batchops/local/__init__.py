"""The local Organization: an AWS emulator on 127.0.0.1, the real rollout against it, the Lambda path driven locally."""
