"""Episodes: run, record, read back, re-simulate, film, export, and say how each ended.

`rollout` runs one, `recorder` and `records` record it, `browse` and `damaged_records` read
records back, `replay` re-simulates one, `video` films it, `minari_export` exports them and
`outcomes` says how each ended. `env_contract` is the testbed's one check of an env against
`envs.contract.CellContract`.
"""
