"""The lifecycle of workflow objects as pure logic (no API calls): a definition's source
check and its immutable revisions, an instance's state machine over its status."""
