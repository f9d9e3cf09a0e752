//! VM launch configs: device-tree (`/gunyah-vm-config`) parsing into typed VM descriptions.
