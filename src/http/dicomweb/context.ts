// What every DICOMweb route module receives from the plugin (routes.ts). A module of
// its own so route modules never import the registering file (no import cycle).

import type { DicomwebOptions } from './types.js';
import type { UrlBase } from './urls.js';

export interface DicomwebContext {
  deps: DicomwebOptions;
  urls: UrlBase;
}
