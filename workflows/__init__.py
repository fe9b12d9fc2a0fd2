"""The grid office's rules: the tree, the case loop, deadlines, routines. No chat platform here."""
