//! Extension API for the Wrenn control plane (filled by the foundation issue).
