"""Icons, the stylesheet, the default configuration and example jobs; installed as the
package cuegui.resources (see cuegui.theme.resources_dir)."""
