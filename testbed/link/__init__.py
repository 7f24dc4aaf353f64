"""The policy link: how the testbed reaches a policy and checks what it answers.

`policy` (the `Policy` protocol and action validation), `client` (`RemotePolicy` over gRPC),
`_stream` (the ActStream session) and `check` (`testbed check-policy`'s conformance run).
"""
