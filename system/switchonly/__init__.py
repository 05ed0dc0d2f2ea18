"""The switch-only baseline's slow path on the switch CPU (docs/switch-only-datapath.md)."""
