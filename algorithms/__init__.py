"""Pure-functional agents; see `algorithms.common.agent.Agent` for the shared protocol."""
