//! Notification letters (PDF).
