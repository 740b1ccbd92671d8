export const LOCK_GET = 'SELECT GET_LOCK(?, ?) AS got';
export const LOCK_RELEASE = 'SELECT RELEASE_LOCK(?) AS released';
