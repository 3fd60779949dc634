"""Front ends: wire protocols that translate between bytes and the core."""
