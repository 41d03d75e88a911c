"""gridtwin scenarios package."""
