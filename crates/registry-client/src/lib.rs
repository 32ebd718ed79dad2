//! OCI distribution client (see the registry-client issue).
