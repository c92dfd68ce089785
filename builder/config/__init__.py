"""Stage 1, config: roles-config/ into one typed model, the role sets, and the
cluster's derived facts (their only home)."""
