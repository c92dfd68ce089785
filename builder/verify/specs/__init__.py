"""The image specs `builder verify` runs with pytest-testinfra (shipped in the package).

test_image.py: the image layer (true right after the build); test_node.py,
test_node_master.py, test_node_slave.py: the node layer (true after first
boot). plugin.py gives them the `node` (a testinfra Host), the contract
computed from the config, and `check`, which records what was expected and
what was found for the summary and the JUnit report.
"""
