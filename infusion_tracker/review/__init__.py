"""The physician's review: the queue of sessions awaiting signature, signing, addenda, and the
printable session record."""
