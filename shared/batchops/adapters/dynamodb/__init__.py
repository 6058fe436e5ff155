"""The AWS store: the DynamoDB event store, the DynamoDB view store, stream-fed projection and scan replay."""
