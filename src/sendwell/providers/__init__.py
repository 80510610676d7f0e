"""Mail hosts behind one interface: Google, Microsoft, IMAP/SMTP."""
