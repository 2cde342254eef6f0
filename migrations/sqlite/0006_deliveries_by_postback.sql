-- The console lists a postback's deliveries; without this index that is a scan of the outbox.
CREATE INDEX deliveries_by_postback ON deliveries (postback_id);
