"""Services: every write in the workflows app goes through a function here."""
