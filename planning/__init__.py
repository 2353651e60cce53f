"""Planning: the ``Agent`` interface, optimisers (CEM, MPPI), composable costs, the world-model
planner, the privileged expert, baselines and trajectory tracking."""
