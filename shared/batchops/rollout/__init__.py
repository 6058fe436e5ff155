"""The Organization rollout behind `deploy.py`, one module per concern.

- `settings`, `clients`, `errors`: what a run was asked to do, the boto3 clients (dry runs refuse writes), failures.
- `artifact`: the Lambda zip in the central account's bucket.
- `stacks`: any stack through a change set; `central_stack`: the central account's stack.
- `oam_sinks`: the central account's CloudWatch OAM sinks.
- `stack_set`, `stack_set_operations`: the member StackSet, its instances, and following its operations.
- `grafana`: the Managed Grafana step.
- `coverage`, `status`: every account x region of the OUs and what the StackSet has there.
- `tables`: what the rollout prints.
- `deploy`, `destroy`: the two commands that change things, as named steps.

Every function that talks to AWS takes its boto3 clients as arguments; `clients.Clients` makes them for the CLI.
"""
