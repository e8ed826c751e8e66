/// The migrations compiled into this binary. Its `files` list is generated at build time from
/// `migrations/*.sql` by the EmbedMigrations plugin, so there is no second copy of the schema.
public enum EmbeddedMigrations {}
