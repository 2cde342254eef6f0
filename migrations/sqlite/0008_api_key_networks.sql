-- Networks an API key may be used from (CIDRs, comma-separated); NULL: anywhere.
ALTER TABLE api_keys ADD COLUMN allowed_networks TEXT;
