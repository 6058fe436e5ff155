"""One builder module per event source; a builder runs when its event is released, in time order."""
