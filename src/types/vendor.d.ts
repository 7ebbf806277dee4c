// Libraries that ship no TypeScript declarations. Keep each as narrow as we use it.
declare module 'dcmjs';
declare module 'dcmjs-imaging';
