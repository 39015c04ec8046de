"""One workflow per command: validated config in, result out. No CLI code here."""
