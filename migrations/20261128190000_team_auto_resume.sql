-- Team setting: the port proxy resumes a paused capsule instead of answering 409.
ALTER TABLE teams ADD COLUMN auto_resume boolean NOT NULL DEFAULT false;
