// SPDX-License-Identifier: GPL-3.0-or-later
// This front's settings: config.js, which the registry_web role renders, over defaults.
export const config = Object.assign(
  { title: 'Registry', registryName: location.host, readOnly: true, authEnabled: true, authMode: 'htpasswd', pageSize: 100 },
  window.REGISTRY_WEB_CONFIG || {},
);
// With a token registry the UI asks the registry's token service (served by the front at
// /token) for a token per repository, and shows only what that grants.
export const tokenMode = config.authEnabled && config.authMode === 'token';
