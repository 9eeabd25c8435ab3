-- Schema version 4: a `rotate --now` request is no longer deleted when a
-- replica takes it, but taken for a time (a lease of its own): `taken_by`
-- names the replica, `taken_until` when the take expires (PostgreSQL's
-- clock). The replica deletes the request once it has done it, and gives it
-- back when it will not do it; a take left by a replica that stopped (killed
-- before running it) expires, and the next replica takes the request over.
ALTER TABLE requests ADD COLUMN taken_by TEXT, ADD COLUMN taken_until TIMESTAMPTZ;
