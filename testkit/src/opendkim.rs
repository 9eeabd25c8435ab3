//! A real OpenDKIM started in the foreground on loopback (to be written).
