// Fixtures every end-to-end test shares: the bootstrap admin's password and the
// password given to the users a test creates.

/** The password of the bootstrap `admin` account (TRESOR_ADMIN_PASSWORD in production). */
export const ADMIN_PASSWORD = 'correct horse battery staple';
/** The password of the users the tests create through POST /admin/users. */
export const USER_PASSWORD = 'viewer secret passphrase';
