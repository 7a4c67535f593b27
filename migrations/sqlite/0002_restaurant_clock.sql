-- Each restaurant's own clock: an IANA time zone (its daylight-saving rules come from the tz
-- database bundled into the binary) and the local time its business day starts, in minutes
-- after midnight (240 is 04:00).
--
-- Existing restaurants get UTC and 04:00, which is what their business day followed until now
-- (nothing ever set utc_offset_minutes to anything but 0), so their ticket numbers turn
-- exactly when they did; `updateRestaurant` sets the right zone. utc_offset_minutes stays,
-- unread, so that nodes still running the previous release keep working during a rolling
-- upgrade; a later migration may drop it.
ALTER TABLE restaurants ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE restaurants ADD COLUMN business_day_start_minutes INTEGER NOT NULL DEFAULT 240
    CHECK (business_day_start_minutes BETWEEN 0 AND 1439);
