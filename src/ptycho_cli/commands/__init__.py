"""Built-in commands, each a plugin module implementing ``ptycho_commands``."""
