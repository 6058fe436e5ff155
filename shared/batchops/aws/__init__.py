"""AWS adapters of batchops: the DynamoDB event store and anything else that imports boto3.

The domain never imports this package; handlers and the CLI wire its adapters in.
"""
