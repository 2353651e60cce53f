"""The JEPA latent world model: experience data, encoder, predictor, target, cost heads, training
and diagnostics. It sees only arrays (``sim_bridge.api`` contracts), never a simulator."""
