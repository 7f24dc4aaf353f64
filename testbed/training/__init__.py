"""Training learned policies with Stable-Baselines3.

`config` is the schema of ``testbed train``, `envs` the environments it trains on and `train`
the run itself.
"""
