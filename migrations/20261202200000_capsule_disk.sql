-- Disk size of each capsule (its root overlay's bound), in MiB: a full disk is ENOSPC inside
-- the capsule. Capsules from before disks had none; 2048 is today's default.
ALTER TABLE capsules ADD COLUMN disk_mb integer NOT NULL DEFAULT 2048 CHECK (disk_mb > 0);
