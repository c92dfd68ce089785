"""The packages a role set installs, as a pinned, signature-checked local repository
(`builder mirror`), and the preflight that finds a dead repository before a build."""
