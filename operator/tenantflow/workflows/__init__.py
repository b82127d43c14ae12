"""Definition revisions and the instance state machine: pure logic, no API calls."""
