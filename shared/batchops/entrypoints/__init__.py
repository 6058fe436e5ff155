"""Entry points that run in AWS Lambda: thin handlers that parse, call the application and return."""
