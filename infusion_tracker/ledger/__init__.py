"""The controlled-substance ledger (/ledger/): vials, draws, gives, witnessed wastes, counts."""
