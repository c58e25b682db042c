"""The capacity planner (``gpuc plan``, design note 0018): a planning scenario turned into tenants and jobs,
run through the simulator's own runner and policy core over pool sizes and policies, and answered in
GPUs, MW, won and hours of waiting. No scheduling logic of its own."""
