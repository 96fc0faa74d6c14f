"""Where pictures come from: snapshot files, ARM reads, Event Grid events."""
