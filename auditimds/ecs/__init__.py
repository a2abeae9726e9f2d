"""ecs stage."""
