"""gridtwin cim package."""
