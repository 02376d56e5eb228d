"""labcoat's test plugin: roles registered through the `labcoat.roles` entry-point group."""
