"""Switch control plane: pipeline, static tables, and front-ends' offload requests over P4Runtime."""
